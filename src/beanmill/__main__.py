from beanmill.cli import main

main()
