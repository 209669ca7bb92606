//! Where the external test clients live. `scripts/test.sh` installs them into a cache outside
//! the repo and exports `EXAI_TEST_*`; a test that needs one and finds the variable missing
//! panics (it must never pass silently without its client).

use std::ffi::OsString;
use std::path::PathBuf;

/// Python venv interpreter with `mcp==1.30.0`, `websockets`, `llmock`.
pub const PYTHON_VAR: &str = "EXAI_TEST_PYTHON";
/// Directory holding Node 22's `node`, `npm` and `npx`.
pub const NODE_BIN_VAR: &str = "EXAI_TEST_NODE_BIN";
/// Directory whose `node_modules/.bin/conformance` is the MCP conformance suite.
pub const CONFORMANCE_DIR_VAR: &str = "EXAI_TEST_CONFORMANCE_DIR";
/// PostgreSQL URL for tests that need a real server.
pub const POSTGRES_URL_VAR: &str = "EXAI_TEST_POSTGRES_URL";
/// The `@copilotkit/aimock` CLI script (`dist/cli.js`, run with Node 22).
pub const AIMOCK_CLI_VAR: &str = "EXAI_TEST_AIMOCK_CLI";
/// Directory whose `node_modules` holds playwright-core for the dashboard browser test.
pub const DASHBOARD_DIR_VAR: &str = "EXAI_TEST_DASHBOARD_DIR";

fn required(var: &str, what: &str) -> String {
    match std::env::var(var) {
        Ok(value) if !value.is_empty() => value,
        _ => panic!(
            "{var} is not set ({what}). Run the tests through `scripts/test.sh`, which installs the \
             test clients and exports {var}; extra arguments go to cargo nextest, e.g. \
             `scripts/test.sh -E 'test(probe)'`."
        ),
    }
}

fn required_path(var: &str, what: &str) -> PathBuf {
    let path = PathBuf::from(required(var, what));
    assert!(
        path.exists(),
        "{var}={} does not exist ({what}); re-run `scripts/test.sh` to reinstall it",
        path.display()
    );
    path
}

/// The venv's Python interpreter (`EXAI_TEST_PYTHON`).
pub fn python() -> PathBuf {
    required_path(PYTHON_VAR, "Python venv with the MCP SDK 1.x")
}

/// Directory with Node 22's `node`/`npm`/`npx` (`EXAI_TEST_NODE_BIN`).
pub fn node_bin_dir() -> PathBuf {
    let dir = required_path(NODE_BIN_VAR, "Node.js 22 bin directory");
    assert!(dir.join("node").exists(), "no `node` in {}; re-run `scripts/test.sh`", dir.display());
    dir
}

/// Directory where the conformance suite is installed (`EXAI_TEST_CONFORMANCE_DIR`).
pub fn conformance_dir() -> PathBuf {
    required_path(CONFORMANCE_DIR_VAR, "MCP conformance suite install dir")
}

/// The conformance suite's executable (a Node script: run it with [`path_with_node`] as PATH).
pub fn conformance_bin() -> PathBuf {
    let bin = conformance_dir().join("node_modules/.bin/conformance");
    assert!(bin.exists(), "{} is missing; re-run `scripts/test.sh`", bin.display());
    bin
}

/// The aimock CLI script (`EXAI_TEST_AIMOCK_CLI`); run it with `node_bin_dir()/node`.
pub fn aimock_cli() -> PathBuf {
    required_path(AIMOCK_CLI_VAR, "@copilotkit/aimock mock provider")
}

/// The `llmock` console script of the Python venv.
pub fn llmock_bin() -> PathBuf {
    let bin = python().with_file_name("llmock");
    assert!(bin.exists(), "{} is missing; re-run `scripts/test.sh`", bin.display());
    bin
}

/// Where playwright-core is installed (`EXAI_TEST_DASHBOARD_DIR`).
pub fn dashboard_dir() -> PathBuf {
    let dir = required_path(DASHBOARD_DIR_VAR, "playwright-core install dir for the dashboard browser test");
    assert!(
        dir.join("node_modules/playwright-core").exists(),
        "playwright-core is missing from {}; re-run `scripts/test.sh`",
        dir.display()
    );
    dir
}

/// The dashboard browser test script (run with Node 22 and `--modules` [`dashboard_dir`]).
pub fn dashboard_script() -> PathBuf {
    client_script("dashboard/check_dashboard.mjs")
}

/// PostgreSQL URL (`EXAI_TEST_POSTGRES_URL`).
pub fn postgres_url() -> String {
    required(POSTGRES_URL_VAR, "PostgreSQL for the storage tests")
}

/// `PATH` with Node 22's bin directory first, so `#!/usr/bin/env node` scripts run on Node 22.
pub fn path_with_node() -> OsString {
    let mut dirs = vec![node_bin_dir()];
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path));
    }
    std::env::join_paths(dirs).unwrap()
}

/// Root of the `exai` package (the repository root).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A vendored client script under `tests/clients/`.
pub fn client_script(name: &str) -> PathBuf {
    let path = repo_root().join("tests/clients").join(name);
    assert!(path.exists(), "client script {} is missing", path.display());
    path
}

/// `moto_server` (S3-compatible test server) from the Python venv.
pub fn moto_server_bin() -> PathBuf {
    let bin = python().with_file_name("moto_server");
    assert!(bin.exists(), "{} is missing; re-run `scripts/test.sh`", bin.display());
    bin
}

/// Where the official MCP TypeScript SDK is installed (`EXAI_TEST_SDK_DIR`).
pub fn sdk_dir() -> PathBuf {
    let dir = required_path("EXAI_TEST_SDK_DIR", "@modelcontextprotocol/sdk install dir for the MCP Tasks test");
    assert!(
        dir.join("node_modules/@modelcontextprotocol/sdk").exists(),
        "@modelcontextprotocol/sdk is missing from {}; re-run `scripts/test.sh`",
        dir.display()
    );
    dir
}
