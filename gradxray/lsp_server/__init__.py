"""gradxray's language server: ``gradxray lsp`` (see :mod:`gradxray.lsp_server.server`).

Importing this package is cheap; pygls is imported by ``server`` only.
"""
