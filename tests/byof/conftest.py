"""The bring-your-own-firmware tests import their helpers from byofsupport.py."""
