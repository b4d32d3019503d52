"""The foundation every layer stands on: errors that name the fix, where files live, the machine and its precision."""
