"""The billing catalog: generate finance's export files, validate them, load them into raw.catalog_*."""
