"""``python -m dihkit.book``: run the notebook sequence (``tour``) or refresh the committed
notebooks (``refresh``)."""

from dihkit.book.tour import main

raise SystemExit(main())
