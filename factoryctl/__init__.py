"""factoryctl: the operator's console for an AI factory.

The package root stays import-cheap on purpose: `factoryctl --help` and shell completion load it on every
keystroke, so nothing heavy (textual, paramiko, pynvml) may be imported here.
"""

__version__ = "0.1.0"
