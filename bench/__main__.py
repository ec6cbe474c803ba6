from bench.run import main
from starter.logs import exit_without_teardown

exit_without_teardown(main())
