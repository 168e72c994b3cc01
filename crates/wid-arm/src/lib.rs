//! wid management plane: resource groups, identities, federated credentials, clusters, role assignments.
