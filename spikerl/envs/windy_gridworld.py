"""Sutton & Barto's windy grid world (Example 6.5), a Gymnasium env.

A 7 x 10 grid; the agent starts at (3, 0) and must reach the goal at (3, 7). The wind
of the column the agent is in pushes it up by ``WIND[col]`` cells after its move; moves
off the grid are clipped. Actions: 0 up, 1 down, 2 left, 3 right. Reward -1 per step;
the episode terminates at the goal (the shortest path takes 15 steps) and is truncated
by the step cap of the registration (``max_episode_steps``). The observation is the cell
index ``row * 10 + col`` (``Discrete(70)``).

``stochastic_wind=True`` (Exercise 6.10) shifts the wind of windy columns by -1, 0 or +1
with equal probability at every step.
"""
from __future__ import annotations

import numpy as np
import gymnasium as gym
from gymnasium import spaces

ROWS, COLS = 7, 10
WIND = np.array([0, 0, 0, 1, 1, 1, 2, 2, 1, 0])
START, GOAL = (3, 0), (3, 7)
MOVES = np.array([(-1, 0), (1, 0), (0, -1), (0, 1)])  # up, down, left, right


class WindyGridWorldEnv(gym.Env):
    metadata = {"render_modes": ["ansi", "rgb_array"], "render_fps": 4}

    def __init__(self, render_mode: str | None = None, stochastic_wind: bool = False):
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']} or None, got {render_mode!r}")
        self.render_mode = render_mode
        self.stochastic_wind = bool(stochastic_wind)
        self.observation_space = spaces.Discrete(ROWS * COLS)
        self.action_space = spaces.Discrete(4)
        self.pos = START

    def _obs(self) -> int:
        return int(self.pos[0] * COLS + self.pos[1])

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.pos = START
        return self._obs(), {}

    def step(self, action):
        if not self.action_space.contains(action):
            raise ValueError(f"action must be in {self.action_space}, got {action!r}")
        row, col = self.pos
        wind = int(WIND[col])
        if self.stochastic_wind and wind > 0:
            wind += int(self.np_random.integers(-1, 2))
        dr, dc = MOVES[int(action)]
        row = int(np.clip(row + dr - wind, 0, ROWS - 1))
        col = int(np.clip(col + dc, 0, COLS - 1))
        self.pos = (row, col)
        terminated = self.pos == GOAL
        return self._obs(), -1.0, terminated, False, {}

    def render(self):
        if self.render_mode == "ansi":
            lines = []
            for r in range(ROWS):
                cells = []
                for c in range(COLS):
                    cells.append("A" if (r, c) == self.pos else "G" if (r, c) == GOAL else "S" if (r, c) == START else ".")
                lines.append(" ".join(cells))
            lines.append(" ".join(str(w) for w in WIND))
            return "\n".join(lines) + "\n"
        if self.render_mode == "rgb_array":
            cell = 16
            img = np.full((ROWS * cell, COLS * cell, 3), 255, dtype=np.uint8)
            for c in range(COLS):  # wind strength as shading
                img[:, c * cell : (c + 1) * cell] -= np.uint8(30 * WIND[c])
            for (r, c), colour in ((START, (90, 90, 255)), (GOAL, (60, 200, 60)), (self.pos, (230, 60, 60))):
                img[r * cell + 2 : (r + 1) * cell - 2, c * cell + 2 : (c + 1) * cell - 2] = colour
            img[::cell, :] = 0
            img[:, ::cell] = 0
            return img
        return None
