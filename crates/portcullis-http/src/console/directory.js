// The console's directory: users (their roles, tenants and identity links), roles and tenants.

export const pages = {};
