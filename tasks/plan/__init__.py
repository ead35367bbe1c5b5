"""The personal development plan: profile, goal catalogue, the rejection pattern, feedback
points, and the planner that turns them into small dated goals in the calendar."""
