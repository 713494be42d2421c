"""The built-in demo: a throwaway PostgreSQL server holding a small shop catalog."""
