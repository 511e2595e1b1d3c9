//! Access audit and compliance posture: who can reach an organization's code, how its default
//! branches are protected, and what that means for its posture.

pub mod model;
