//! Runnable examples of dspex; see `src/bin/`. Each prints what it does.
