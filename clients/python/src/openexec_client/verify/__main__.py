"""``python -m openexec_client.verify --key <vkey> receipt.json ...``"""

import sys

from ._cli import main

sys.exit(main())
