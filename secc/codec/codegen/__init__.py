"""Build-time generator: XSD (lxml) -> EXI grammars -> Python modules in ``_generated``.

Run ``python -m secc.codec.codegen [--schemas DIR] [--out DIR] [--check]``.
"""
