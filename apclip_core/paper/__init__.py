"""The paper as an application of the library: its methods, one function per table, table files, preflight and report."""
