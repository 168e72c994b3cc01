//! wid token service: assertion validation, issuer key cache, access-token minting, AADSTS errors.
