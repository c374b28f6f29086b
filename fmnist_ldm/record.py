"""`python -m fmnist_ldm.record`: the short command for fmnist_ldm.course.record (see there)."""
import sys

if __name__ == "__main__":
    from fmnist_ldm.course.record import main
    sys.exit(main())
