"""ModelSync."""


def version() -> str:
    """The installed distribution's version ("unknown" from a source tree never installed)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("modelsync")
    except PackageNotFoundError:
        return "unknown"
