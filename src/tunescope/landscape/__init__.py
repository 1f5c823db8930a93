"""Loss-landscape basins: directions, radius search (bracketing + bisection), statistical bounds."""
