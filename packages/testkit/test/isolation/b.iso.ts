import { isolationFixture } from './file.js';

isolationFixture('b');
