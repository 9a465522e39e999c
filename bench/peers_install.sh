# Sourced by the bench scripts that run the peers through the official Python MCP SDK:
# installs @modelcontextprotocol/server-postgres@0.6.2 and @bytebase/dbhub@0.21.2 from npm
# under target/bench-peers and the mcp SDK in target/bench-venv (never committed), once,
# and sets $peers and $venv to them.
peers=target/bench-peers
mkdir -p "$peers"
if [ ! -d "$peers/node_modules/@bytebase/dbhub" ] || [ ! -d "$peers/node_modules/@modelcontextprotocol/server-postgres" ]; then
  (cd "$peers" && npm init -y >/dev/null && npm install --no-audit --no-fund --silent \
    @modelcontextprotocol/server-postgres@0.6.2 @bytebase/dbhub@0.21.2)
fi
venv=target/bench-venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "mcp==2.3.0"
fi
