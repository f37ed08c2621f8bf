"""GIGA-Piano library code that is not part of the Hub-shipped model or tokenizer files.

Sub-packages are imported on demand (for example ``gigapiano.data``) so that importing the top-level
package stays cheap.
"""

__version__ = "0.1.0"


def lazy_exports(package: str, exports: dict[str, str]):
    """A module `__getattr__` for `package` that imports `name` from `package.<exports[name]>` on first use,
    so a package can list its public names without importing torch or transformers up front."""
    import importlib

    def __getattr__(name: str):
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{exports[name]}"), name)
        setattr(importlib.import_module(package), name, value)
        return value

    return __getattr__
