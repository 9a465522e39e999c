//! Errors of serving MCP (start-up and transport), as opposed to tool errors, which are
//! results the client reads (see `render`).

/// Why the MCP server could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum McpError {
    /// The operator's options are unsafe or inconsistent; the message says what to change.
    #[error("{0}")]
    Refused(String),
    /// A token file could not be read or is malformed.
    #[error("token file: {0}")]
    Tokens(String),
    /// The gateway failed while the server was being set up.
    #[error(transparent)]
    Gateway(#[from] dbward_gateway::GatewayError),
    /// The MCP session could not be initialised.
    #[error("MCP initialisation failed: {0}")]
    Initialize(String),
    /// The MCP client of a child `dbward serve` failed.
    #[error("MCP client: {0}")]
    Client(String),
    /// Reading or writing the transport failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}
