import sys

from lowbit.main import main

sys.exit(main())
