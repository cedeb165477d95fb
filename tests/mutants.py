"""One classic bug each in examples/student_net.py: the table lives in the package (grade/audit.py), where
`mnist-compare grade --audit` grades every one; tests/test_check.py proves each, bench/calibrate.py measures
each one's margin."""

from mnist_compare.grade.audit import MUTATIONS

__all__ = ["MUTATIONS"]
