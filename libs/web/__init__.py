"""The dashboard's shared shell: page layout, navigation, stylesheet and small JS helpers.

Each service contributes its own pages through ``Service.routes()`` and
``Service.nav()``; this package only frames them.
"""
