# PlatformIO extra script for [env:native]: link the host's BearSSL and the sanitizer runtimes.
Import("env")  # noqa: F821  (provided by PlatformIO)

env.Append(LINKFLAGS=["-fsanitize=address,undefined"], LIBS=["bearssl"])  # noqa: F821
