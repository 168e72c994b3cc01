//! `wid ad signed-in-user show`: the CLI's own principal. az asks Microsoft Graph `/me`; wid
//! answers from the profile (the object id is what scripts use: `--query id -o tsv`).

use clap::{Args, Subcommand};

use crate::error::CliError;
use crate::output::value::{Obj, Val};
use crate::{Ctx, GlobalArgs, Outcome};

#[derive(Debug, Args)]
pub struct AdArgs {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub cmd: AdCmd,
}

#[derive(Debug, Subcommand)]
pub enum AdCmd {
    /// View the currently logged-in principal.
    #[command(name = "signed-in-user", subcommand)]
    SignedInUser(SignedInUserCmd),
}

#[derive(Debug, Subcommand)]
pub enum SignedInUserCmd {
    /// Get the details for the currently logged-in principal.
    Show,
}

pub async fn run(cmd: AdCmd, ctx: &mut Ctx<'_>) -> Result<Outcome, CliError> {
    match cmd {
        AdCmd::SignedInUser(SignedInUserCmd::Show) => {
            let p = ctx.profile()?.clone();
            let object_id = match p.principal_id.clone() {
                Some(id) => id,
                // Older profiles: learn the object id from our own token.
                None => {
                    let token = ctx.token().await?;
                    crate::http::token_claim(&token, "oid").ok_or_else(|| {
                        CliError::failed("The access token has no 'oid' claim; cannot tell the principal's object id.")
                    })?
                }
            };
            let display = p.display_name.clone().unwrap_or_else(|| p.client_id.clone());
            // The members of Graph's `/me` (user) answer.
            let me = Obj::new()
                .with("businessPhones", Val::List(Vec::new()))
                .with("displayName", display)
                .with("givenName", Val::Null)
                .with("id", object_id)
                .with("jobTitle", Val::Null)
                .with("mail", Val::Null)
                .with("mobilePhone", Val::Null)
                .with("officeLocation", Val::Null)
                .with("preferredLanguage", Val::Null)
                .with("surname", Val::Null)
                .with("userPrincipalName", Val::Null);
            Ok(Outcome::value(Val::Obj(me)))
        }
    }
}
