"""Knowledge base: TOML data files (rules, catalogs, defaults) shipped inside the package."""
