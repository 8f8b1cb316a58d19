"""The CloudFormation stacks of a HelioCloud instance, one module per part."""
