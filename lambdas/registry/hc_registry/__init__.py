"""Registry Lambdas: CloudCatalog index maintenance (pure functions + thin boto3 handlers)."""
