"""The notebook sequence run headless (``tour``), its offline HTML book and the JavaScript the
book serves locally. May import: ``runs`` and below (it reads profiles; notebooks import
:mod:`dihkit.lab`, not this)."""
