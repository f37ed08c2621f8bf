"""GIGA-Piano library code that is not part of the Hub-shipped model or tokenizer files.

Sub-packages are imported on demand (for example ``gigapiano.data``) so that importing the top-level
package stays cheap.
"""

__version__ = "0.1.0"
