//! `openexec token create|list|revoke` as an operator runs them: the token
//! is printed once, alone on stdout; the file keeps only its hash; `list`
//! never shows a secret or a hash; a revoked token is refused by a store
//! that loaded the file before the revocation.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on broken invariants

use std::path::Path;
use std::process::{Command, Output};

use chrono::Utc;
use openexec::auth::{AuthError, Authenticator, TokenStore, FILE_NAME};

fn openexec(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_openexec"))
        .args(args)
        .env_remove("OPENEXEC_DATA_DIR")
        .env_remove("OPENEXEC_DB_URL")
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn create(dir: &Path, extra: &[&str]) -> String {
    let data = dir.to_str().unwrap();
    let mut args = vec!["token", "create", "--data", data];
    args.extend_from_slice(extra);
    let out = openexec(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert_eq!(
        text.lines().count(),
        1,
        "stdout is the token alone: {text:?}"
    );
    let token = text.trim_end_matches('\n').to_owned();
    assert!(token.starts_with("oex1_") && token.len() == 65, "{token}");
    assert!(stderr(&out).contains("shown only now"), "{}", stderr(&out));
    token
}

#[test]
fn create_list_and_revoke_through_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let agent = create(
        &data,
        &[
            "--role",
            "agent",
            "--tenant",
            "acme",
            "--actions",
            "echo, add",
            "--label",
            "ci runner",
            "--expires-in",
            "30d",
        ],
    );
    let auditor = create(&data, &["--role", "auditor", "--tenant", "acme"]);
    let agent_id = &agent[5..21];
    let auditor_id = &auditor[5..21];

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(data.join(FILE_NAME))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let file = std::fs::read_to_string(data.join(FILE_NAME)).unwrap();
    for token in [&agent, &auditor] {
        assert!(!file.contains(&token[22..]), "the file holds a secret");
    }

    let out = openexec(&["token", "list", "--data", data.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let list = stdout(&out);
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines.len(), 3, "{list}");
    assert_eq!(
        lines[0],
        "id\trole\ttenant\tactions\tlabel\tcreated\texpires\trevoked\tcert"
    );
    let agent_row: Vec<&str> = lines[1].split('\t').collect();
    assert_eq!(
        agent_row[..5],
        [agent_id, "agent", "acme", "echo,add", "ci runner"]
    );
    assert_ne!(agent_row[6], "never");
    assert_eq!(agent_row[7], "-");
    let auditor_row: Vec<&str> = lines[2].split('\t').collect();
    assert_eq!(auditor_row[..5], [auditor_id, "auditor", "acme", "*", "-"]);
    assert_eq!(auditor_row[6], "never");
    let hashes: Vec<String> = serde_json::from_str::<serde_json::Value>(&file).unwrap()
        ["principals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["secret_sha256"].as_str().unwrap().to_owned())
        .collect();
    for secret in [&agent[22..], &auditor[22..]]
        .into_iter()
        .map(str::to_owned)
        .chain(hashes)
    {
        assert!(!list.contains(&secret), "list shows a secret or a hash");
    }

    // A store loaded before the revocation refuses the token once it
    // reloads.
    let auth = Authenticator::new(std::sync::Arc::new(TokenStore::open(&data).unwrap()));
    let header = format!("Bearer {agent}");
    assert!(auth
        .authenticate(Some(header.as_bytes()), Utc::now())
        .unwrap()
        .is_some());

    let out = openexec(&[
        "token",
        "revoke",
        "--data",
        data.to_str().unwrap(),
        agent_id,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).starts_with(&format!("revoked {agent_id} at ")));

    auth.store().reload().unwrap();
    assert_eq!(
        auth.authenticate(Some(header.as_bytes()), Utc::now()),
        Err(AuthError::Revoked)
    );
    let list = stdout(&openexec(&[
        "token",
        "list",
        "--data",
        data.to_str().unwrap(),
    ]));
    let agent_row: Vec<&str> = list.lines().nth(1).unwrap().split('\t').collect();
    assert_ne!(agent_row[7], "-", "{list}");
}

#[test]
fn db_url_names_the_data_directory_like_serve() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sled://{}", dir.path().join("d").display());
    let out = openexec(&[
        "token", "create", "--db-url", &url, "--role", "admin", "--tenant", "ops",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(dir.path().join("d").join(FILE_NAME).exists());
}

#[test]
fn refused_commands_print_nothing_on_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    for args in [
        &[
            "token", "create", "--data", data, "--role", "root", "--tenant", "t",
        ][..],
        &[
            "token", "create", "--data", data, "--role", "agent", "--tenant", " ",
        ],
        &[
            "token",
            "create",
            "--data",
            data,
            "--role",
            "agent",
            "--tenant",
            "t",
            "--expires-in",
            "1w",
        ],
        &[
            "token",
            "create",
            "--data",
            data,
            "--role",
            "agent",
            "--tenant",
            "t",
            "--actions",
            " , ",
        ],
        &["token", "revoke", "--data", data, "0123456789abcdef"],
        &["token", "revoke", "--data", data, "not-an-id"],
    ] {
        let out = openexec(args);
        assert!(!out.status.success(), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}: {}", stdout(&out));
    }
    // An empty directory lists no principals (authentication off).
    let out = openexec(&["token", "list", "--data", data]);
    assert!(out.status.success());
    assert_eq!(stdout(&out).lines().count(), 1);
    assert!(stderr(&out).contains("authentication is off"));
}
