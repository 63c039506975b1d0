"""argparse value types (one line each on a bad value). Pure Python: the scripts parse their
arguments before anything heavy loads."""
import argparse
import math


def integer(text, least):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < least:
        raise argparse.ArgumentTypeError(f"{value} must be an integer >= {least}")
    return value


def positive_int(text):
    return integer(text, 1)


def non_negative_int(text):
    return integer(text, 0)


def positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"{value} must be a number > 0")
    return value


def non_negative_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (value >= 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"{value} must be a number >= 0")
    return value


def port(text):
    value = integer(text, 0)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a port (0-65535; 0: any free one)")
    return value


def fraction(text):
    value = positive_float(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"{value} must be in (0, 1]")
    return value
