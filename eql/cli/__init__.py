"""The `eql` command line. The top layer: may import every other package of the project."""
