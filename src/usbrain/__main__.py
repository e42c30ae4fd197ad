import sys

from usbrain.cli import main

sys.exit(main())
