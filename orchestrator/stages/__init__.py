"""Stage library functions: quantize, convert, build, serve, verify, eval, bench, card. No CLI code here."""
