import { constants } from 'node:os'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import {
  AlreadyExistsError, CorruptExtentError, DeadlineExceededError, DirectoryNotEmptyError, IsADirectoryError, NoQuorumError,
  NodeUnreachableError, NotADirectoryError, NotFoundError, PermissionDeniedError, QuotaExceededError, RemoteError
} from '@dfs/api'
import { errno, errnoOf } from '../../src/mount/errno.js'
import { CrossDeviceError, ReadOnlyMountError, StaleFileError } from '../../src/mount/errors.js'

const E = constants.errno

test('each dfs error becomes its errno (negative), matched on its name', () => {
  const cases: Array<[Error, number]> = [
    [new NotFoundError('x'), E.ENOENT],
    [new PermissionDeniedError('x'), E.EACCES],
    [new ReadOnlyMountError('x'), E.EROFS],
    [new QuotaExceededError('x'), E.EDQUOT],
    [new AlreadyExistsError('x'), E.EEXIST],
    [new IsADirectoryError('x'), E.EISDIR],
    [new NotADirectoryError('x'), E.ENOTDIR],
    [new DirectoryNotEmptyError('x'), E.ENOTEMPTY],
    [new CrossDeviceError('x'), E.EXDEV],
    [new StaleFileError('x'), E.ESTALE],
    [new CorruptExtentError('e1', 'sha256:a', 'sha256:b'), E.EIO],
    [new NoQuorumError('x'), E.EIO],
    [new NodeUnreachableError('x'), E.EIO],
    [new DeadlineExceededError('x'), E.EIO]
  ]
  for (const [err, n] of cases) assert.is(errnoOf(err), -n, err.name)
})

test('a remote error rebuilt by name maps like the class; the message never matters', () => {
  assert.is(errnoOf(new RemoteError('QuotaExceeded', 'NotFound: misleading text')), -E.EDQUOT)
  const plain = new Error('no such file')
  plain.name = 'NotFound'
  assert.is(errnoOf(plain), -E.ENOENT)
})

test('local disk errors keep their code; anything else is EIO', () => {
  assert.is(errnoOf(Object.assign(new Error('disk full'), { code: 'ENOSPC' })), -E.ENOSPC)
  assert.is(errnoOf(Object.assign(new Error('weird'), { code: 'EWEIRD' })), -E.EIO)
  assert.is(errnoOf(new Error('boom')), -E.EIO)
  assert.is(errnoOf('a string'), -E.EIO)
  assert.is(errnoOf(undefined), -E.EIO)
  assert.is(errno('ENOENT'), -E.ENOENT)
})

test.run()
