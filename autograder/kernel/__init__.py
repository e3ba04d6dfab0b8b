"""The trust boundary, as a folder: everything here also runs inside the student's kernel.

These modules are copied into every grading kernel's site (``profiles.KERNEL_CORE`` and each
assignment's ``kernel_modules``, see :class:`autograder.grading.sandbox.KernelSite`), where the
student's code can read, patch or rewrite them. The judge imports its own copy of the same code
(the protocol, the checks, the seeded RNG), but never trusts a value computed in the kernel: what
crosses back is data, decoded by :func:`autograder.kernel.protocol.decode` and checked against the
judge's own references (docs/ARCHITECTURE.md, "The trust boundary"). Nothing outside this folder
is copied into a kernel; nothing in it imports anything outside it.

The modules keep their old names too: ``autograder.checks`` is ``autograder.kernel.checks``
(an alias made by :mod:`autograder`'s ``__init__``).
"""
