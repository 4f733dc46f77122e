// The console's MCP servers (protected resources) and their OAuth clients, single sign-on
// connections with their role-mapping rules, and admin keys.

export const pages = {};
