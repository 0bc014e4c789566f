//! `sluice tokens new`: a random API token, shown once, and the configuration that accepts it
//! (only its SHA-256: the configuration never holds a token).

use anyhow::bail;
use sluice_core::tokens::{self, Scope, TokenConfig};

use crate::cli::NewTokenArgs;

pub fn new(args: &NewTokenArgs) -> anyhow::Result<()> {
    if let Some(problem) = tokens::name_problem(&args.name) {
        bail!("--name `{}`: {problem}", args.name);
    }
    let mut scopes: Vec<Scope> = Vec::new();
    for scope in &args.scopes {
        if !scopes.contains(scope) {
            scopes.push(*scope);
        }
    }
    if args.env && args.name.contains('-') {
        bail!(
            "--name `{}`: environment variable names cannot hold `-`; use `_`",
            args.name
        );
    }
    let token = tokens::new_token();
    let table = TokenConfig {
        sha256: tokens::sha256_hex(&token),
        scopes,
        rate: args.rate,
        burst: args.burst,
    };
    if let Some((field, problem)) = table.problem() {
        bail!("--{field}: {problem}");
    }
    let scopes: Vec<&str> = table.scopes.iter().map(|s| s.as_str()).collect();
    let prefix = format!("SLUICE__API__TOKENS__{}", args.name.to_ascii_uppercase());
    let mut env = vec![
        format!("{prefix}__SHA256={}", table.sha256),
        format!("{prefix}__SCOPES={}", scopes.join(",")),
    ];
    let mut toml = vec![
        format!("[api.tokens.{}]", args.name),
        format!("sha256 = \"{}\"", table.sha256),
        format!(
            "scopes = [{}]",
            scopes
                .iter()
                .map(|s| format!("\"{s}\""))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    ];
    for (key, value) in [("rate", table.rate), ("burst", table.burst)] {
        if let Some(value) = value {
            env.push(format!("{prefix}__{}={value}", key.to_ascii_uppercase()));
            toml.push(format!("{key} = {value}"));
        }
    }
    if args.env {
        // Shell assignments (`eval "$(sluice tokens new … --env)"`): the token for clients, the
        // rest for the api.
        println!("SLUICE_TOKEN={token}");
        for line in env {
            println!("{line}");
        }
        return Ok(());
    }
    println!(
        "A new API token `{}` ({}). It is shown this once: sluice keeps only its SHA-256.\n",
        args.name,
        scopes.join(", ")
    );
    println!("    {token}\n");
    println!("Accept it in the api's configuration file:\n");
    for line in toml {
        println!("    {line}");
    }
    println!("\nor with environment variables:\n");
    for line in env {
        println!("    {line}");
    }
    println!("\nand call the api with it:\n");
    println!("    export SLUICE_TOKEN={token}");
    println!(
        "    curl -H \"Authorization: Bearer $SLUICE_TOKEN\" http://127.0.0.1:8080/v1/queue/stats"
    );
    Ok(())
}
