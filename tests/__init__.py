"""loadkit's tests. A package, as is each test folder, so that a helper is imported by its full
name (``tests.loadkit.misbehaving_servers``) and two folders may hold modules of the same name;
fixture folders (source text the lock audit reads, locustfiles Locust loads by path) are not."""
