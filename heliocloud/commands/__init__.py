"""Subcommands of the `heliocloud` CLI: one module each, with ``register(subparsers)``."""


def add_config_option(parser) -> None:
    parser.add_argument(
        "-c", "--config", metavar="FILE", default=None,
        help="instance config (default: $HELIOCLOUD_CONFIG or ./instance.yaml)",
    )
