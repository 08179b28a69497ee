"""The browser studio of `mrt-bridge serve --web`: HTTP + WebSocket server and its static page."""
