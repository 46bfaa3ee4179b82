// Header-only module; SwiftPM needs a source file.
