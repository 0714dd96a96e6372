import { isolationFixture } from './file.js';

isolationFixture('a');
