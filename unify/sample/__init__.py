"""Writers of the official raw formats, and the generated sample world that uses them.

Each writer is the inverse of its converter: plain records in, the release's file(s) out,
byte-compatible in layout (key names, nesting, header blocks). Tests round-trip
writer -> converter; the sample world and the benchmarks produce raw trees through them.
"""
