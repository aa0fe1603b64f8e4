//! Bearer tokens on the command line: the endpoint's (--token, HTTPWS_TOKEN or
//! --token-file), and `httpws hash-token`, which turns one into what the tokens file stores.

use anyhow::Context;
use httpws::proto::handshake::Token;

/// The token from --token (or HTTPWS_TOKEN) or --token-file, held to the proxy's rule.
pub(super) fn token(
    given: Option<String>,
    file: Option<&std::path::Path>,
) -> anyhow::Result<Option<Token>> {
    let (token, source) = match (given, file) {
        // Checked here rather than by clap, whose message would name only --token when the
        // other token came from the environment.
        (Some(_), Some(_)) => anyhow::bail!(
            "--token-file and --token (or HTTPWS_TOKEN in the environment) both give a token: keep one"
        ),
        (Some(token), None) => (token, "--token (or HTTPWS_TOKEN)".to_owned()),
        (None, Some(path)) => (
            read_token_file(path)?,
            format!("--token-file {}", path.display()),
        ),
        (None, None) => return Ok(None),
    };
    // The token itself is never part of the message.
    let token = Token::checked(&token).map_err(|_| {
        anyhow::anyhow!(
            "{source}: a token must be non-empty visible ASCII (no spaces or control characters)"
        )
    })?;
    Ok(Some(token))
}

/// The first line of a token file, its line end trimmed.
fn read_token_file(path: &std::path::Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("--token-file {}", path.display()))?;
    let first = text.lines().next().unwrap_or("");
    anyhow::ensure!(
        !first.is_empty(),
        "--token-file {}: the file is empty; its first line must be the token",
        path.display()
    );
    Ok(first.to_owned())
}

/// `httpws hash-token`: the tokens file stores hashes, never tokens.
pub fn hash_token() -> anyhow::Result<()> {
    let mut token = String::new();
    std::io::stdin()
        .read_line(&mut token)
        .context("reading the token from stdin")?;
    let token = token.trim_end_matches(['\r', '\n']);
    anyhow::ensure!(
        !token.is_empty(),
        "give the token on stdin: printf %s TOKEN | httpws hash-token"
    );
    println!("{}", httpws::proxy::access::hash_token(token));
    Ok(())
}
