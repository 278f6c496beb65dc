"""The Bifrost platform: database, services, execution engine and web app."""
