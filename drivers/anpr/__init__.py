"""License-plate cameras and barriers: the vehicle registry and its decision, the plate classifier
shared by every transport, and the receiver for cameras that push over HTTP."""
