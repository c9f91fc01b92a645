"""Generated EXI codec modules. Do not edit: see secc.codec.codegen."""
