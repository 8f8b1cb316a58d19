"""Portal Lambdas: the JSON API, spend ledger, budgets (pure functions + thin boto3 handlers)."""
