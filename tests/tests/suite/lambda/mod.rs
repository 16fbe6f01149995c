//! The functions as AWS runs them: the environment the SAM CLI gives them, and their real binaries
//! under AWS's Runtime Interface Emulator.

mod rie;
mod sam_cli;
